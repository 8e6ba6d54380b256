"""The Dash UI and its FastAPI server (rows -> screen). Reads the store through
``exporters``; built in the UI issue."""
