"""Type stub of the compiled engine (csrc/bindings): its names are typed Any."""
from typing import Any

def __getattr__(name: str) -> Any: ...
