//! OTLP export of traces and metrics (cargo feature `otel`, off by default).
//!
//! The standard OpenTelemetry variables configure it: `OTEL_EXPORTER_OTLP_ENDPOINT` (default
//! `http://localhost:4317`) and `OTEL_SERVICE_NAME` (default `stackcore`). The exporters speak gRPC
//! through tonic, which needs a tokio runtime: the SDK runs them on a current-thread runtime of its
//! own, on its own thread. That is the one exception to "tokio only in ingest", and only with this
//! feature on.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use stackcore_io::metrics::Metrics;

/// Keeps the exporters alive; dropping it flushes and shuts them down.
pub struct Telemetry {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
}

/// Why OTLP export could not start. The server runs on without it.
#[derive(Debug, thiserror::Error)]
#[error("OTLP exporter: {0}")]
pub struct TelemetryError(String);

fn resource() -> Resource {
    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "stackcore".into());
    Resource::builder().with_service_name(name).build()
}

impl Telemetry {
    /// Builds the span and metric exporters and returns the tracing layer to install.
    pub fn init<S>() -> Result<(Telemetry, impl tracing_subscriber::Layer<S>), TelemetryError>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        use opentelemetry_sdk::runtime::TokioCurrentThread;
        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| TelemetryError(e.to_string()))?;
        let processor =
            opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(spans, TokioCurrentThread)
                .build();
        let tracer = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource())
            .build();
        let metrics = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| TelemetryError(e.to_string()))?;
        let reader =
            opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(metrics, TokioCurrentThread)
                .build();
        let meter = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(tracer.tracer("stackcore"));
        Ok((Telemetry { tracer, meter }, layer))
    }

    /// Exports the server's counters as observable OTLP metrics.
    pub fn export_metrics(&self, m: Arc<Metrics>) {
        let meter = self.meter.meter("stackcore");
        macro_rules! observe {
            ($($name:ident),*) => {$(
                let mm = m.clone();
                let _ = meter
                    .u64_observable_gauge(concat!("stackcore_", stringify!($name)))
                    .with_callback(move |o| o.observe(mm.$name.load(Relaxed), &[]))
                    .build();
            )*};
        }
        observe!(
            upstream_updates_total,
            upstream_errors_total,
            events_applied_total,
            decode_errors_total,
            mutations_total,
            frames_total,
            frames_sent_total,
            bytes_sent_total,
            connected_clients,
            subscriptions,
            pending_outbound_bytes,
            slow_consumers_closed_total,
            last_slot
        );
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.tracer.shutdown();
        let _ = self.meter.shutdown();
    }
}
