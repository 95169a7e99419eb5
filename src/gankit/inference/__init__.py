"""Using trained runs: the roles a loaded model implements, loading a run, sampling, latent-space
tools, translating files and exporting generators."""
