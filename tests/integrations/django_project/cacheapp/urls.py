from django.urls import path

from . import views

urlpatterns = [
    path("counted/", views.counted),
    path("async-counter/", views.async_counter),
]
