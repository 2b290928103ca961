"""The ``webhook`` kind: alerts as signed Standard Webhooks, one POST each, at once."""
