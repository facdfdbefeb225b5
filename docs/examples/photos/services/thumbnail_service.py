"""The thumbnail service: the work for one photo. It knows nothing of scheduling."""

from curate import NonRetryableError
from sqlalchemy.ext.asyncio import AsyncSession

from photos.models import Photo

THUMBNAIL_SIZE = 128


async def process_single_thumbnail(item_id: int, session: AsyncSession) -> None:
    """Size the photo's thumbnail. curate commits these writes with the Complete status."""
    photo = await session.get(Photo, item_id)
    if photo is None:
        raise NonRetryableError(f"photo {item_id} does not exist")
    if photo.width <= 0 or photo.height <= 0:
        raise NonRetryableError(f"photo {item_id} has no size ({photo.width}x{photo.height})")
    scale = THUMBNAIL_SIZE / max(photo.width, photo.height)
    photo.thumb_width = max(1, round(photo.width * scale))
    photo.thumb_height = max(1, round(photo.height * scale))
