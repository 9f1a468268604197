import factory

from accounts.models import Item, User

DEFAULT_PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    is_active = True

    @factory.post_generation
    def password(obj: User, create: bool, extracted: str | None, **kwargs: object) -> None:
        obj.set_password(extracted or DEFAULT_PASSWORD)
        if create:
            obj.save(update_fields=["password"])


class ItemFactory(factory.django.DjangoModelFactory[Item]):
    class Meta:
        model = Item

    title = factory.Faker("sentence", nb_words=3)
    description = factory.Faker("paragraph")
    owner = factory.SubFactory(UserFactory)
