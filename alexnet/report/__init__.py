"""The paper-style report: its data (render) and its words (templates/)."""
