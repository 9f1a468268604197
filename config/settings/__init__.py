"""Settings entry point: loads the env chain, then the module for ``APP_ENV``.

``DJANGO_SETTINGS_MODULE=config.settings`` works for every environment; ``APP_ENV`` picks
``local`` (the default), ``staging``, ``production`` or ``test``.
"""

from config.env import load_env_chain

_APP_ENV = load_env_chain()

if _APP_ENV == "production":
    from config.settings.production import *  # noqa: F403
elif _APP_ENV == "staging":
    from config.settings.staging import *  # noqa: F403
elif _APP_ENV == "test":
    from config.settings.test import *  # noqa: F403
else:
    from config.settings.local import *  # noqa: F403
