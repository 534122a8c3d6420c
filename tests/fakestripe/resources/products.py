"""Products."""

from __future__ import annotations

from typing import Any

from ..errors import invalid, missing_param
from ..events import Tracker, emit
from ..params import Arr, Bool, Hash, Int, Meta, Str
from ..render import created_filter, paginate, render
from ..state import Store
from . import Ctx, route
from .common import CREATED, LIST_SPEC, set_fields, set_metadata

PRODUCT_FIELDS = dict(
    active=Bool(), name=Str(250), description=Str(), metadata=Meta(), images=Arr(Str()),
    url=Str(), unit_label=Str(), statement_descriptor=Str(22), tax_code=Str(),
    marketing_features=Arr(Hash(name=Str())), shippable=Bool(),
)


def create_product_record(store: Store, p: dict[str, Any], *, param_prefix: str = ""
                          ) -> dict[str, Any]:
    if not p.get("name"):
        raise missing_param(f"{param_prefix}name" if not param_prefix else
                            f"{param_prefix}[name]")
    pid = p.get("id") or store.new_id("prod")
    if pid in store.objects:
        raise invalid("Product already exists.", param="id", code="resource_already_exists")
    prod = {
        "id": pid, "object": "product", "active": p.get("active", True) is not False,
        "created": store.now, "default_price": None, "description": p.get("description"),
        "images": p.get("images") or [], "livemode": False,
        "marketing_features": [{"name": f["name"]} for f in p.get("marketing_features") or []],
        "metadata": {k: v for k, v in (p.get("metadata") or {}).items() if v is not None},
        "name": p["name"], "package_dimensions": None, "shippable": p.get("shippable"),
        "statement_descriptor": p.get("statement_descriptor"), "tax_code": p.get("tax_code"),
        "type": "service", "unit_label": p.get("unit_label"), "updated": store.now,
        "url": p.get("url"),
    }
    store.add(prod)
    emit(store, "product.created", prod)
    return prod


DEFAULT_PRICE_DATA = Hash(currency=Str(), unit_amount=Int(), metadata=Meta(),
                          recurring=Hash(interval=Str(), interval_count=Int()),
                          tax_behavior=Str())


@route("POST", "/v1/products",
       Hash(PRODUCT_FIELDS, id=Str(), default_price_data=DEFAULT_PRICE_DATA),
       "ProductCreateParams")
def create_product(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    from .prices import create_price_record

    prod = create_product_record(ctx.store, p)
    if p.get("default_price_data"):
        price = create_price_record(ctx.store, {**p["default_price_data"], "product": prod["id"]},
                                    param_prefix="default_price_data")
        prod["default_price"] = price["id"]
    return render(ctx.store, prod)


@route("GET", "/v1/products/{id}", Hash(), "ProductRetrieveParams")
def retrieve_product(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    return render(ctx.store, ctx.store.get(id, "product"))


@route("POST", "/v1/products/{id}", Hash(PRODUCT_FIELDS, default_price=Str()),
       "ProductUpdateParams")
def update_product(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    store = ctx.store
    prod = store.get(id, "product")
    with Tracker(store, prod, "product.updated"):
        set_fields(prod, p, "active", "name", "description", "url", "unit_label",
                   "statement_descriptor", "tax_code", "shippable")
        if p.get("images", 0) != 0:
            prod["images"] = p["images"] or []
        if "marketing_features" in p:
            prod["marketing_features"] = [{"name": f["name"]}
                                          for f in p["marketing_features"] or []]
        set_metadata(prod, p)
        if "default_price" in p:
            if p["default_price"] is not None:
                price = store.get(p["default_price"], "price", param="default_price")
                if price["product"] != id:
                    raise invalid("The default price must belong to this product.",
                                  param="default_price")
            prod["default_price"] = p["default_price"]
        prod["updated"] = store.now
    return render(store, prod)


@route("DELETE", "/v1/products/{id}", Hash(), "ProductDeleteParams")
def delete_product(ctx: Ctx, p: dict[str, Any], id: str) -> dict[str, Any]:
    store = ctx.store
    prod = store.get(id, "product")
    if any(pr["product"] == id for pr in store.all("price")):
        raise invalid("This product cannot be deleted because it has one or more user-created "
                      "prices.")
    snapshot = render(store, prod)
    prod["_deleted"] = True
    emit(store, "product.deleted", prod, snapshot=snapshot)
    return {"id": id, "object": "product", "deleted": True}


@route("GET", "/v1/products", Hash(LIST_SPEC, active=Bool(), ids=Arr(Str()), created=CREATED,
                                   url=Str()), "ProductListParams")
def list_products(ctx: Ctx, p: dict[str, Any]) -> dict[str, Any]:
    items = ctx.store.all("product")
    if p.get("active") is not None:
        items = [o for o in items if o["active"] == p["active"]]
    if p.get("ids"):
        items = [o for o in items if o["id"] in p["ids"]]
    if p.get("url"):
        items = [o for o in items if o["url"] == p["url"]]
    return paginate(ctx.store, created_filter(items, p.get("created")), p, "/v1/products")
