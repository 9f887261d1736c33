"""The bare programs each figure is compared with: the least code that does the same job."""
