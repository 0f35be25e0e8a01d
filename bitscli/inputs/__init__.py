"""What users type, parsed and checked against BITS rules and limits: job fields, file names, network settings."""
