export const WireValueType = {
    RAW: 'RAW',
    PROXY: 'PROXY',
    THROW: 'THROW',
    HANDLER: 'HANDLER'
};
export const MessageType = {
    GET: 'GET',
    SET: 'SET',
    APPLY: 'APPLY',
    CONSTRUCT: 'CONSTRUCT',
    RELEASE: 'RELEASE'
};
