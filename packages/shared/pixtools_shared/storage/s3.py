"""Object storage in S3 (or an S3-compatible server such as MinIO or moto)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import boto3
import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pixtools_shared.settings import Settings
from pixtools_shared.storage.errors import ObjectNotFoundError, StorageError
from pixtools_shared.storage.keys import (
    AREAS,
    Area,
    validate_area,
    validate_key,
    validate_prefix,
)
from pixtools_shared.storage.signing import content_disposition

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

log = structlog.get_logger(__name__)

# DeleteObjects accepts at most 1000 keys per request.
DELETE_BATCH_SIZE = 1000

AddressingStyle = Literal["auto", "path", "virtual"]

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class S3Storage:
    """One bucket per area; download URLs are presigned GET requests."""

    def __init__(
        self,
        buckets: Mapping[Area, str],
        *,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        addressing_style: AddressingStyle = "path",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
        default_expires_in: int = 3600,
    ) -> None:
        missing = [area for area in AREAS if area not in buckets]
        if missing:
            raise ValueError(f"no bucket configured for areas: {', '.join(missing)}")
        self._buckets = dict(buckets)
        self._default_expires_in = default_expires_in

        config = Config(
            region_name=region,
            signature_version="s3v4",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            s3={"addressing_style": addressing_style},
        )
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        self._client: S3Client = session.client(
            "s3", endpoint_url=endpoint_url, config=config
        )
        # Presigned URLs need no request, so a second client just carries the
        # address that clients use, which may differ from the internal one.
        if public_endpoint_url and public_endpoint_url != endpoint_url:
            self._presign_client: S3Client = session.client(
                "s3", endpoint_url=public_endpoint_url, config=config
            )
        else:
            self._presign_client = self._client

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        return cls(
            {
                "uploads": settings.S3_BUCKET_UPLOADS,
                "outputs": settings.S3_BUCKET_OUTPUTS,
                "bundles": settings.S3_BUCKET_BUNDLES,
            },
            endpoint_url=settings.S3_ENDPOINT_URL,
            public_endpoint_url=settings.S3_PUBLIC_ENDPOINT_URL,
            region=settings.S3_REGION,
            access_key_id=settings.S3_ACCESS_KEY_ID,
            secret_access_key=settings.S3_SECRET_ACCESS_KEY,
            addressing_style=settings.S3_ADDRESSING_STYLE,
            connect_timeout=settings.S3_CONNECT_TIMEOUT_SECONDS,
            read_timeout=settings.S3_READ_TIMEOUT_SECONDS,
            max_attempts=settings.S3_MAX_ATTEMPTS,
            default_expires_in=settings.DOWNLOAD_URL_EXPIRES_SECONDS,
        )

    def ensure_buckets(self) -> None:
        """Create any missing bucket (for development and tests)."""
        for area in AREAS:
            bucket = self._buckets[area]
            try:
                self._client.head_bucket(Bucket=bucket)
                continue
            except ClientError as exc:
                if _error_code(exc) not in _NOT_FOUND_CODES | {"NoSuchBucket"}:
                    raise _storage_error("check bucket", area, bucket, exc) from exc
            except BotoCoreError as exc:
                raise _storage_error("check bucket", area, bucket, exc) from exc

            try:
                self._client.create_bucket(Bucket=bucket)
                log.info("storage_bucket_created", area=area, bucket=bucket)
            except ClientError as exc:
                if _error_code(exc) not in {
                    "BucketAlreadyOwnedByYou",
                    "BucketAlreadyExists",
                }:
                    raise _storage_error("create bucket", area, bucket, exc) from exc
            except BotoCoreError as exc:
                raise _storage_error("create bucket", area, bucket, exc) from exc

    def put(self, area: Area, key: str, data: bytes, content_type: str) -> None:
        bucket = self._bucket(area)
        try:
            self._client.put_object(
                Bucket=bucket,
                Key=validate_key(key),
                Body=data,
                ContentType=content_type,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error("write", area, key, exc) from exc

    def get(self, area: Area, key: str) -> bytes:
        bucket = self._bucket(area)
        try:
            response = self._client.get_object(Bucket=bucket, Key=validate_key(key))
            return response["Body"].read()
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                raise ObjectNotFoundError(f"No object {area}/{key}.") from None
            raise _storage_error("read", area, key, exc) from exc
        except BotoCoreError as exc:
            raise _storage_error("read", area, key, exc) from exc

    def delete(self, area: Area, key: str) -> None:
        bucket = self._bucket(area)
        try:
            self._client.delete_object(Bucket=bucket, Key=validate_key(key))
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return
            raise _storage_error("delete", area, key, exc) from exc
        except BotoCoreError as exc:
            raise _storage_error("delete", area, key, exc) from exc

    def delete_prefix(self, area: Area, prefix: str) -> int:
        bucket = self._bucket(area)
        keys = self.list_keys(area, prefix)
        for start in range(0, len(keys), DELETE_BATCH_SIZE):
            batch = keys[start : start + DELETE_BATCH_SIZE]
            try:
                response = self._client.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
            except (ClientError, BotoCoreError) as exc:
                raise _storage_error("delete", area, prefix, exc) from exc
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise StorageError(
                    f"could not delete {len(errors)} objects under {area}/{prefix}: "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )
        return len(keys)

    def list_keys(self, area: Area, prefix: str = "") -> list[str]:
        bucket = self._bucket(area)
        validate_prefix(prefix)
        keys: list[str] = []
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error("list", area, prefix, exc) from exc
        return sorted(keys)

    def exists(self, area: Area, key: str) -> bool:
        bucket = self._bucket(area)
        try:
            self._client.head_object(Bucket=bucket, Key=validate_key(key))
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return False
            raise _storage_error("check", area, key, exc) from exc
        except BotoCoreError as exc:
            raise _storage_error("check", area, key, exc) from exc
        return True

    def download_url(
        self, area: Area, key: str, filename: str, expires_in: int | None = None
    ) -> str:
        params: dict[str, Any] = {
            "Bucket": self._bucket(area),
            "Key": validate_key(key),
            "ResponseContentDisposition": content_disposition(filename),
        }
        try:
            return self._presign_client.generate_presigned_url(
                "get_object",
                Params=params,
                ExpiresIn=expires_in or self._default_expires_in,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error("sign", area, key, exc) from exc

    def _bucket(self, area: str) -> str:
        return self._buckets[validate_area(area)]


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _storage_error(
    action: str, area: str, key: str, exc: ClientError | BotoCoreError
) -> StorageError:
    if isinstance(exc, ClientError):
        reason = (
            f"{_error_code(exc)} {exc.response.get('Error', {}).get('Message', '')}"
        )
    else:
        reason = type(exc).__name__
    log.warning(
        "storage_request_failed", action=action, area=area, key=key, reason=reason
    )
    return StorageError(f"could not {action} {area}/{key}: {reason.strip()}")
