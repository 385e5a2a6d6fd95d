"""Realistic memory sentences and context queries for the benchmark, from templates.

Deterministic for a given seed, so two runs load the same data.
"""

import random

NAMES = [
    "Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiroshi", "Ines", "Jonas",
    "Kavya", "Liam", "Maya", "Nikolai", "Olivia", "Pablo", "Quinn", "Rosa", "Samir", "Tara",
    "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe",
]  # fmt: skip
RELATIONS = [
    "sister", "brother", "mother", "father", "partner", "best friend", "manager", "colleague",
    "daughter", "son", "neighbour", "cousin",
]  # fmt: skip
CITIES = [
    "Lisbon", "Berlin", "Kyoto", "Toronto", "Nairobi", "Buenos Aires", "Oslo", "Melbourne",
    "Seoul", "Marrakesh", "Edinburgh", "Vancouver", "Istanbul", "Lima", "Prague", "Dublin",
]  # fmt: skip
FOODS = [
    "sushi", "ramen", "tacos al pastor", "pad thai", "margherita pizza", "falafel", "pho",
    "dark chocolate", "spicy curry", "fresh oysters", "mushroom risotto", "dumplings",
    "sourdough bread", "greek salad", "paella", "cheesecake",
]  # fmt: skip
DRINKS = ["black coffee", "green tea", "oat flat white", "sparkling water", "chai", "espresso"]
HOBBIES = [
    "rock climbing", "playing the piano", "trail running", "watercolour painting",
    "chess", "birdwatching", "woodworking", "salsa dancing", "photography", "gardening",
    "surfing", "knitting", "bouldering", "baking bread", "cycling", "reading sci-fi novels",
]  # fmt: skip
JOBS = [
    "nurse", "software engineer", "teacher", "architect", "data analyst", "chef",
    "product manager", "veterinarian", "lawyer", "graphic designer",
]  # fmt: skip
COMPANIES = ["a hospital", "a startup", "a bank", "the city council", "a bakery", "a school"]
PETS = ["a golden retriever", "two cats", "a parrot", "a rabbit", "a beagle", "a tortoise"]
ALLERGIES = ["peanuts", "shellfish", "gluten", "lactose", "cats", "pollen"]
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]  # fmt: skip
EVENTS = [
    "dentist appointment", "job interview", "wedding anniversary", "marathon", "flight",
    "piano recital", "team offsite", "birthday party", "doctor's check-up", "concert",
]  # fmt: skip
LANGUAGES = ["Spanish", "Japanese", "German", "Portuguese", "Korean", "Italian", "Arabic"]
COLOURS = ["dark mode", "light mode", "large fonts", "short answers", "detailed answers"]

PREFERENCES = [
    "Loves {food} and orders it whenever possible.",
    "Prefers {drink} in the morning, never anything sweet.",
    "Favourite hobby is {hobby}, usually on weekends.",
    "Dislikes {food}; do not suggest it for dinner.",
    "Prefers {colour} in every app.",
    "Would rather travel by train than fly when visiting {city}.",
    "Enjoys {hobby} with their {relation} {name}.",
    "Wants restaurant suggestions near {city} to include {food}.",
]
FACTS = [
    "Lives in {city} with {pet}.",
    "Works as a {job} at {company} in {city}.",
    "Their {relation} is called {name} and lives in {city}.",
    "Is allergic to {allergy}.",
    "Is learning {language} and practises every evening.",
    "Grew up in {city} and moved away at eighteen.",
    "Has {pet} named {name}.",
    "Speaks {language} fluently thanks to their {relation} {name}.",
]
EVENTS_T = [
    "Has a {event} on {day} {month} in {city}.",
    "Went to {city} with {name} in {month} and loved the {food}.",
    "Their {relation} {name}'s birthday is on {day} {month}.",
    "Started {hobby} lessons in {month}.",
    "Booked a trip to {city} for {month} with their {relation}.",
    "Ran a half marathon in {city} last {month}.",
    "Moved to a new flat in {city} in {month}.",
    "Is planning a {event} with {name} next {month}.",
]
TEMPLATES = {"preference": PREFERENCES, "fact": FACTS, "event": EVENTS_T}

QUERIES = [
    "What food does the user like?",
    "Where does the user live?",
    "Any upcoming trips or travel plans?",
    "What are their hobbies?",
    "What do they drink in the morning?",
    "When is someone's birthday coming up?",
    "What is their job?",
    "Does the user have any allergies?",
    "Tell me about their family, their sister or brother",
    "Which languages are they learning?",
    "Recommend a restaurant for dinner tonight",
    "Do they have pets?",
    "What should I know before booking a flight to Lisbon?",
    "Is there anything about running or marathons?",
    "Which city did they grow up in?",
    "How do they like the app to look, dark mode?",
    "Who is Maya?",
    "Plan a weekend activity for them",
    "What appointments do they have in March?",
    "Gift ideas for their partner",
]


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        food=rng.choice(FOODS),
        drink=rng.choice(DRINKS),
        hobby=rng.choice(HOBBIES),
        colour=rng.choice(COLOURS),
        city=rng.choice(CITIES),
        relation=rng.choice(RELATIONS),
        name=rng.choice(NAMES),
        pet=rng.choice(PETS),
        job=rng.choice(JOBS),
        company=rng.choice(COMPANIES),
        allergy=rng.choice(ALLERGIES),
        language=rng.choice(LANGUAGES),
        event=rng.choice(EVENTS),
        month=rng.choice(MONTHS),
        day=rng.randint(1, 28),
    )


def memory(rng: random.Random, user_id: str) -> dict:
    """One memory request body (the fields a client sends on create)."""
    memory_type = rng.choices(["preference", "fact", "event"], weights=[4, 4, 3])[0]
    body = {
        "user_id": user_id,
        "type": memory_type,
        "content": _fill(rng.choice(TEMPLATES[memory_type]), rng),
        "importance": rng.choices([None, 1, 2, 3, 4, 5], weights=[2, 1, 2, 3, 2, 1])[0],
        "confidence": round(rng.uniform(0.6, 1.0), 2),
    }
    if rng.random() < 0.3:
        body["metadata"] = {"source": rng.choice(["chat", "onboarding", "email"])}
    return body


def memories(count: int, user_id: str, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [memory(rng, user_id) for _ in range(count)]
