from django.contrib.admin import AdminSite

audit_site = AdminSite(name="audit")
