"""The adapters parley is assembled from: one line each.

A new front door is a package under bots/ showing `DoorPackage` (bots/faces.py) and one
line in DOORS; a new store, a package under storage/ showing `StorePackage` (it says which
PARLEY_DATABASE values are its own) and one line in STORES; a model server, models/.
"""

from __future__ import annotations

import bots.discord as discord
import bots.slack as slack
import models.openai as openai_compatible
import storage.sqlite as sqlite
from bots.faces import DoorPackage, ModelPackage, StorePackage

DOORS: tuple[DoorPackage, ...] = (slack, discord)
STORES: tuple[StorePackage, ...] = (sqlite,)
MODELS: tuple[ModelPackage, ...] = (openai_compatible,)
