"""CloudFront-style signed URLs and cookies for playback through a CDN.

One custom policy with a wildcard resource (``https://cdn/hls/<episode folder>/*``)
covers the master playlist, every variant playlist and every segment. The same
three values work as a query string (the returned URL) and as the
``CloudFront-Policy`` / ``CloudFront-Signature`` / ``CloudFront-Key-Pair-Id``
cookies, which is what lets relative playlist links keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from studio_media.config import MediaSettings

COOKIE_NAMES = {
    "Policy": "CloudFront-Policy",
    "Signature": "CloudFront-Signature",
    "Key-Pair-Id": "CloudFront-Key-Pair-Id",
}


@dataclass(frozen=True, slots=True)
class SignedCdnUrl:
    url: str
    cookies: dict[str, str]
    resource: str


class CdnSigner:
    def __init__(self, base_url: str, key_pair_id: str, private_key_pem: bytes) -> None:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the CDN signing key must be an RSA private key")
        self._key = key
        self.base_url = base_url.rstrip("/")
        self._signer = CloudFrontSigner(key_pair_id, self._rsa_sign)

    @classmethod
    def from_settings(cls, settings: MediaSettings) -> CdnSigner:
        if not (settings.cdn_base_url and settings.cdn_key_pair_id):
            raise ValueError("cdn mode needs MEDIA_CDN_BASE_URL and MEDIA_CDN_KEY_PAIR_ID")
        if settings.cdn_private_key:
            pem = settings.cdn_private_key.encode()
        elif settings.cdn_private_key_file:
            pem = Path(settings.cdn_private_key_file).read_bytes()
        else:
            raise ValueError("cdn mode needs MEDIA_CDN_PRIVATE_KEY or MEDIA_CDN_PRIVATE_KEY_FILE")
        return cls(settings.cdn_base_url, settings.cdn_key_pair_id, pem)

    def _rsa_sign(self, message: bytes) -> bytes:
        # CloudFront signs with SHA-1 RSA (PKCS#1 v1.5); that is its format, not a choice.
        return self._key.sign(message, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303

    def url_for(self, key: str) -> str:
        return f"{self.base_url}/{key}"

    def sign_folder(self, folder: str, entry: str, expires_at: datetime) -> SignedCdnUrl:
        """A signed URL of ``folder + entry`` whose policy opens everything under ``folder``."""
        resource = f"{self.base_url}/{folder.strip('/')}/*"
        policy = self._signer.build_policy(resource, expires_at.astimezone(UTC))
        url = self._signer.generate_presigned_url(
            self.url_for(folder.strip("/") + "/" + entry), policy=policy
        )
        params = dict(parse_qsl(urlsplit(url).query))
        cookies = {COOKIE_NAMES[name]: params[name] for name in COOKIE_NAMES}
        return SignedCdnUrl(url=url, cookies=cookies, resource=resource)
