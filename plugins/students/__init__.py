"""Built-in students: the symbolic (and tree) models distilled from the teacher."""
