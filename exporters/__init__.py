"""Avatar -> bytes, one module per format (glb, vrm1, vrm0, preview)."""
