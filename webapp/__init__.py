"""The Gradio app's parts that are not layout: settings, per-session state and files, and one module of
handlers per tab. The libraries (`mobile_sam`, `everything`, `compare`) never import this package."""
