"""The pricing catalog: its domain model, validation, versions and the pricing table."""
