//! Exporters: the last components of a pipeline, sending data out of the collector.
