//! drvdom-agent library (being written).
