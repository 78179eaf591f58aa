"""The bottom layer: errors, configuration, canonical schema, the analysis date, labels, escaping,
atomic files, privacy, progress and JSON model I/O. Imports nothing else from segkit."""

__all__ = ["calendar", "config", "dates", "errors", "escaping", "files", "labels", "modelio", "privacy", "progress",
    "schema"]
