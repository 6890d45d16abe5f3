"""Model families: each module builds the Keras model a recipe names (``reviewlens.models.<family>``)."""
