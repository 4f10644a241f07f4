"""Creatives: catalog ingestion, the pipeline (plan, prepare, render, finish), the content-addressed
store, the local and Ray runners (both start every product with :meth:`CreativeMaker.start`), and
the contact sheet."""
