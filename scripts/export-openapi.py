"""Write the decision service's OpenAPI schema to docs/openapi.json (the committed contract)."""

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from backdrop.serving.app import create_app
from backdrop.serving.settings import load_settings
from backdrop.creative.store import CreativeStore

with tempfile.TemporaryDirectory() as tmp:
    CreativeStore(Path(tmp) / "store").close()  # the schema does not depend on the store's content
    app = create_app(load_settings(None, store=Path(tmp) / "store", db=str(Path(tmp) / "events.sqlite")))
    schema = app.openapi()
    app.state.service.close()
out = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
out.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
print(f"wrote {out}")
