"""Ships N numbered log records through the OpenTelemetry Python SDK's OTLP/HTTP exporter.

Usage: python otel_logs.py URL TOKEN N none|gzip

Python's `logging` goes through the SDK's LoggingHandler, a BatchLogRecordProcessor and
OTLPLogExporter (protobuf) to URL/otlp/v1/logs, with resource service.name=otel-python,
service.namespace=shop and host.name=test-host, an `order_id` attribute on each record and
every record inside one span context (trace id 5b8efff798038103d269b633813fc60c, span id
eee19b7ec3c1b174). Exit code 0 only when every export was answered with success.
"""
import logging
import sys
import warnings

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

TRACE_ID = 0x5B8EFFF798038103D269B633813FC60C
SPAN_ID = 0xEEE19B7EC3C1B174


class CheckedExporter(OTLPLogExporter):
    """The exporter, remembering whether any export failed."""

    failed = False

    def export(self, batch):
        result = super().export(batch)
        if result != LogRecordExportResult.SUCCESS:
            CheckedExporter.failed = True
        return result


def main():
    url, token, n, compression = sys.argv[1:5]
    exporter = CheckedExporter(
        endpoint=f"{url}/otlp/v1/logs",
        headers={"Authorization": f"Bearer {token}"},
        compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
        timeout=10,
    )
    provider = LoggerProvider(
        resource=Resource.create(
            {
                "service.name": "otel-python",
                "service.namespace": "shop",
                "host.name": "test-host",
            }
        )
    )
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    # The SDK's handler is deprecated in favour of a contrib package; it is still the SDK's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    log = logging.getLogger("fjord.e2e")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    span = NonRecordingSpan(
        SpanContext(
            trace_id=TRACE_ID,
            span_id=SPAN_ID,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    )
    with trace.use_span(span):
        for i in range(1, int(n) + 1):
            log.info("otel python line seq=%08d", i, extra={"order_id": f"ORD-{i:06d}"})
    ok = provider.force_flush(timeout_millis=30_000)
    provider.shutdown()
    if not ok or CheckedExporter.failed:
        print("otel_logs.py: an export failed or did not finish", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
