from rest_framework.routers import SimpleRouter

# A detail route's id: a UUID, with or without its dashes. Anything else is no route (404), not
# a 400 from the lookup.
UUID_REGEX = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


class OptionalSlashRouter(SimpleRouter):
    """Routes that answer with and without a trailing slash (FastAPI clients send neither)."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"
