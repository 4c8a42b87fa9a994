"""JSON Schemas of the custom resources tradewise renders (package data, shipped in the wheel)."""
