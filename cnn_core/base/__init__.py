"""The foundation every other layer stands on: errors, facts about the machine, the model store and the project's registered Keras layer (which every saved model needs to load)."""
