"""Everything about the user's data: images now; the project store and formats build on it."""
