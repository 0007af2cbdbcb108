"""`automl-tl app`: a local web app (Gradio) over the same runs as the command line.

One module per page (`page_runs`, `page_search`, `page_run`, `page_try`, `page_export`), put
together in `ui`; `runs` reads runs as the command line does, `jobs` starts searches as child
processes, `models` loads trained models, `server` serves it all, on this machine only unless
asked otherwise. Gradio is an optional extra, imported only by the app.
"""
