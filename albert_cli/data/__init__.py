"""Dataset readers, label vocabularies and input pipelines shared by every command."""
