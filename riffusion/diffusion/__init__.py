"""The diffusion model: checkpoint loading, prompt embeddings, the riffusion pipeline."""
