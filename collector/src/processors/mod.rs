//! Processors: components that sit between receivers and exporters in a pipeline.
