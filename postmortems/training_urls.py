"""Routes of training: the page (``pages``, included at ``/training/``, namespace ``training``)
and the API (``api``, included at ``/api/``, namespace ``training_api``)."""

from django.urls import path

from postmortems import training_views

pages = (
    [path("overdue/", training_views.training_overdue_page, name="overdue")],
    "training",
)

api = (
    [path("training/overdue/", training_views.TrainingOverdueView.as_view(), name="overdue")],
    "training_api",
)
