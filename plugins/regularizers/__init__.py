"""Built-in regularizers: smoothness penalties for the teacher."""
