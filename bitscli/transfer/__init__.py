"""Moving bytes: HTTP and file:// downloads, BITS uploads, part files; never imports store or output."""
