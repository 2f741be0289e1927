"""The model side of modstream: taxonomy, normalisation, ONNX runtime, training, evaluation.

Never imports aiokafka: the stream sees a classifier only through
:class:`classifiers.api.TextClassifier` (texts in, OpenAI-shaped results out).
"""
