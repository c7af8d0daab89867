"""A question-answering assistant over the indexed documents: retrieval, the model, answers, citations, alignment."""
