"""Who may see an image, who finds it in a listing, who may change it — pure functions.

Glance's rules:
    public     everyone sees and lists it
    community  everyone may see and use it by id; listed only when asked (visibility=community)
    shared     the owner, and member projects: any member may see it by id (to accept it),
               accepted members find it in listings
    private    the owner only
The cloud admin sees everything. Only the owner (or admin) changes or deletes an image.
"""
from __future__ import annotations

from appliance.images.records import Image, ImageMember, MemberStatus, Visibility


def can_see(image: Image, project_id: str | None, is_admin: bool,
            member: ImageMember | None) -> bool:
    if is_admin or image.owner == project_id:
        return True
    if image.visibility in (Visibility.PUBLIC, Visibility.COMMUNITY):
        return True
    return image.visibility == Visibility.SHARED and member is not None


def can_use(image: Image, project_id: str | None, member: ImageMember | None) -> bool:
    """May the project boot from (or build a volume from) this image? Pending shares may not."""
    if image.owner == project_id or image.visibility in (Visibility.PUBLIC, Visibility.COMMUNITY):
        return True
    return (image.visibility == Visibility.SHARED and member is not None
            and member.status == MemberStatus.ACCEPTED)


def listed(image: Image, project_id: str | None, is_admin: bool, member: ImageMember | None,
           visibility: str | None, member_status: str = "accepted") -> bool:
    """Is the image in a listing with the given `visibility` filter (None = the default view)?"""
    if visibility in (None, "all"):
        if is_admin or image.owner == project_id:
            return True  # the admin lists every image, an owner all of its own
        if image.visibility == Visibility.COMMUNITY:
            return visibility == "all"  # community images are not listed by default
        if image.visibility == Visibility.PUBLIC:
            return True
        return _member_listed(image, member, member_status)
    if image.visibility != visibility:
        return False
    if visibility == Visibility.SHARED:
        if is_admin or image.owner == project_id:
            return True
        return _member_listed(image, member, member_status)
    if visibility == Visibility.PRIVATE:
        return is_admin or image.owner == project_id
    return True  # public, community


def _member_listed(image: Image, member: ImageMember | None, member_status: str) -> bool:
    if image.visibility != Visibility.SHARED or member is None:
        return False
    return member_status == "all" or member.status == member_status


def can_modify(image: Image, project_id: str | None, is_admin: bool) -> bool:
    return is_admin or image.owner == project_id
