"""Label Studio's own settings, with the loop's guard (:mod:`loop_ls_guard`) as the last
middleware: the embedded server is started with ``DJANGO_SETTINGS_MODULE=loop_ls_settings``
and this folder on its ``PYTHONPATH``. Runs in Label Studio's environment, not the loop's."""

import os

# Label Studio's settings module reads ``django.conf.settings`` while it is being imported (to
# set up Sentry), which loads the module that DJANGO_SETTINGS_MODULE names as it stands: this
# one, still empty. Name Label Studio's own module for that read, then ours again.
_OURS = os.environ.get("DJANGO_SETTINGS_MODULE", __name__)
os.environ["DJANGO_SETTINGS_MODULE"] = "label_studio.core.settings.label_studio"
try:
    from label_studio.core.settings.label_studio import *  # noqa: E402, F403
    from label_studio.core.settings.label_studio import MIDDLEWARE  # noqa: E402
finally:
    os.environ["DJANGO_SETTINGS_MODULE"] = _OURS

MIDDLEWARE = [*MIDDLEWARE, "loop_ls_guard.AnnotatorGuard"]
