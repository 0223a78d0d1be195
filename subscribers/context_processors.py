from django.conf import settings


def publication(request):
    """The publisher's name and site for every page's header and footer."""
    return {
        "publication_name": settings.PUBLICATION_NAME,
        "publication_url": settings.PUBLICATION_URL,
        "publication_logo_url": settings.PUBLICATION_LOGO_URL,
        "publication_postal_address": settings.PUBLICATION_POSTAL_ADDRESS,
    }
