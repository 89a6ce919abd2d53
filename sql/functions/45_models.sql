-- Local models beyond embeddings: object detection, image captions, speech to text
-- (declared in 45_models.toml; the work is in pixelgres.server.ai.local_tasks).

-- @registry
