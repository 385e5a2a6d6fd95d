"""The benchmark's floor: the least a Django+DRF endpoint does for the same work as the
service's create and list, written as one normally would (ORM lookups, model fields that
encrypt and decrypt themselves, no validation beyond presence, no rate limit, no term
index).

POST /floor/memory: bearer key -> one indexed ApiKey lookup by hash, encrypt the content
(the model's envelope), INSERT one memories_memory row, return the contract's JSON for it.
GET /floor/memory?user_id=U&limit=20: the same key lookup, one indexed SELECT of the user's
newest live rows (the model's fields decrypt them), the contract's JSON for each."""

import uuid

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.models import ApiKey, hash_key
from memories.models import Memory
from memories.serializers import memory_payload


class FloorKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        api_key = ApiKey.objects.filter(key_hash=hash_key(token.strip())).first()
        if scheme.lower() != "bearer" or api_key is None or api_key.is_revoked:
            raise exceptions.AuthenticationFailed("Authentication required")
        return api_key, api_key

    def authenticate_header(self, request):
        return "Bearer"


class FloorMemoryView(APIView):
    authentication_classes = [FloorKeyAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = []

    def post(self, request):
        data = request.data
        content, user_id = data.get("content"), data.get("user_id")
        if not isinstance(content, str) or not isinstance(user_id, str):
            raise exceptions.ValidationError({"detail": "user_id and content are required"})
        now = timezone.now()
        memory = Memory(
            id=uuid.uuid4(),
            owner_id=request.auth.owner_id,
            user_id=user_id,
            type=data.get("type") or "fact",
            content=content,  # into the model's envelope, encrypted on the way in
            created_at=now,
            updated_at=now,
        )
        memory.save(force_insert=True)
        return Response(memory_payload(memory))  # the contract's JSON, as the service

    def get(self, request):
        user_id = request.query_params.get("user_id")
        if not user_id:
            raise exceptions.ValidationError({"detail": "user_id is required"})
        limit = min(int(request.query_params.get("limit") or 20), 100)
        rows = (
            Memory.objects.live()  # the memory_owner_user_newest index
            .filter(owner_id=request.auth.owner_id, user_id=user_id)
            .order_by("-created_at", "-id")[:limit]
        )
        return Response([memory_payload(memory) for memory in rows])
