"""API permissions: model permissions for every method, reads included.

A user who may not view a model gets 404 for its objects (they are invisible) and 403 for its
list; a user who may view but not write gets 403 on writes (DESIGN.md section 6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.http import Http404
from rest_framework.permissions import DjangoModelPermissions

from incidents.api.query import is_list_request, refuse_unknown_query_parameters

if TYPE_CHECKING:  # rest_framework.views imports this module through its settings
    from rest_framework.request import Request
    from rest_framework.views import APIView


class ModelPermissions(DjangoModelPermissions):
    """``DjangoModelPermissions`` that also requires ``view_<model>`` for safe methods.

    A view may name other permissions per HTTP method in ``required_permissions``
    (``{"POST": ["incidents.declare_incident"]}``); a refusal then names them in the 403.

    The model is ``view.permission_model`` when the view names it (the model of every queryset
    its ``get_queryset`` returns: building that queryset, with its visibility filter, only to
    read its model cost a tenth of a create's CPU), else its queryset's.
    """

    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if not is_list_request(request, view):
            # Lists are checked by their paginator, which knows the filters and its own names.
            refuse_unknown_query_parameters(request, view, listing=False)
        model = getattr(view, "permission_model", None) or self._queryset(view).model
        view_permission = f"{model._meta.app_label}.view_{model._meta.model_name}"
        lookup = getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "pk")
        if view.kwargs.get(lookup) and not request.user.has_perm(view_permission):
            raise Http404
        required = getattr(view, "required_permissions", {}).get(request.method)
        if required is not None:
            if request.user.has_perms(required):
                return True
            # Permission instances live for one request; DRF answers 403 with this message.
            self.message = f"Your role may not do this (needs {', '.join(required)})."
            return False
        # DjangoModelPermissions.has_permission from here, with the model found above.
        if getattr(view, "_ignore_model_permissions", False):
            return True
        method = cast(str, request.method)  # always set on a request being answered
        return request.user.has_perms(self.get_required_permissions(method, model))
