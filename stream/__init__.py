"""The streaming side of modstream.

Data flow, top to bottom: ``kafka`` (clients) -> ``decode`` (bytes to
``schemas.ChatMessage`` or a dead letter) -> ``batcher`` (size/time close) ->
``pipeline`` (tokenise, infer off the loop) -> ``policy`` + ``router`` (scores,
flags, dead letters) -> ``kafka.BatchedWriter`` (batched produce) ->
``offsets`` (commit only after acks). ``app`` hosts it in Faust with the
``http`` views. Never imports onnxruntime.
"""
