"""What the reader sees: figures, the recommender's plain views and the live explorer (the
only folder that draws)."""
