"""The book's machinery: chapter sizes (``chapter``), the reproduction scorecard (``scorecard``) and the
one-command runner that executes every chapter and builds the book (``reproduce``)."""
