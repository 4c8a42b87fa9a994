"""Pure logic: config, profiles, rendering, plans, diffs, SLOs, reports as data. No I/O beyond
reading templates and config."""
