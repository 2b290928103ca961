"""The ``fhir`` kind: FHIR R4 transaction Bundles to the care platform."""
