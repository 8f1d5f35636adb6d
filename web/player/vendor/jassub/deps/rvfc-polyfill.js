// Stands in for rvfc-polyfill: the demo player starts the ASS renderer only
// where HTMLVideoElement.prototype.requestVideoFrameCallback exists.
export {};
