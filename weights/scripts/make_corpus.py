"""Write the training corpus of the bundled model: simple children's stories from a grammar.

The bundled model (minigpt/data/minigpt-tiny/) has to be rebuildable on a fresh machine that reaches
nothing but package registries, and its text has to be free of any licence question. So the
corpus is not downloaded: it is generated here, from a small probabilistic grammar of the
stories a five-year-old is told. Every story has a cast (a hero, a friend, a grown-up), a place,
an object, and one of a dozen plots; each event in a plot has several phrasings, and optional
details are added at random. The same seed always gives the same corpus, byte for byte.

Stories are separated by a line holding only ``<|endoftext|>``; train_tiny.py splits on it.

Usage:
    python weights/scripts/make_corpus.py --out weights/corpus/stories.txt --stories 12000

Example:
    >>> story = make_story(random.Random(0))
    >>> story == make_story(random.Random(0)) and story[0].isupper() and story.endswith(".")
    True
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

END_OF_STORY = "<|endoftext|>"

# ---------------------------------------------------------------------------------------------
# Word lists. Keep them plain: the model has a few million parameters and should spend them on
# grammar and story shape, not on rare words.
# ---------------------------------------------------------------------------------------------
GIRL_NAMES = "Lily Mia Anna Sara Emma Lucy Zoe Ella Ruby Nora Maya Amy Rosa Ivy Grace Kate".split()
BOY_NAMES = "Tom Ben Sam Max Leo Jack Tim Finn Noah Jake Theo Oscar Hugo Eli Luke Owen".split()
PET_NAMES = (
    "Pip Rusty Coco Bella Daisy Toby Milo Rosie Bubbles Sunny Patch Fluffy Nibbles Ziggy Honey "
    "Pepper Buddy Sparky Poppy Whiskers"
).split()
ANIMALS = (
    "bunny cat dog puppy bear fox mouse duck owl frog bird lion pig turtle squirrel hedgehog lamb "
    "kitten elephant monkey"
).split()
PEOPLE = {"she": ["girl"], "he": ["boy"]}
CHARACTER_ADJECTIVES = (
    "little small happy kind brave curious shy silly friendly clever gentle cheerful busy young "
    "playful quiet sleepy smart funny good"
).split()
PLACES = [
    "park", "forest", "garden", "beach", "farm", "river", "hill", "meadow", "town", "school",
    "lake", "market", "woods", "pond", "zoo", "library", "playground", "barn", "field", "yard",
]  # fmt: skip
HIDING_SPOTS = [
    "under the bed", "behind the door", "in the tall grass", "under a big leaf",
    "next to the tree", "inside a box", "under the table", "behind a rock", "in the sand",
    "near the fence", "under the bench", "in a bush", "by the pond", "on top of the shelf",
]  # fmt: skip
COLORS = "red blue green yellow pink purple orange white brown shiny".split()
OBJECTS = [
    "ball", "kite", "toy car", "hat", "teddy bear", "book", "doll", "stone", "cup", "drum",
    "boat", "balloon", "box", "key", "shell", "ribbon", "spoon", "basket", "crayon", "scarf",
]  # fmt: skip
FOODS = "apple cake cookie pie sandwich bread carrot banana muffin pear".split()
GOOD_FEELINGS = "happy glad proud excited".split()
BAD_FEELINGS = "sad scared worried upset lonely".split()
GROWN_UPS = ["Mom", "Dad", "Grandma", "Grandpa"]
ACTIVITIES = [
    "play with a ball", "run in the grass", "sing songs", "draw pictures", "read books",
    "dance", "climb trees", "look at the stars", "jump in puddles", "bake cookies", "swim",
    "build sand castles", "pick flowers", "fly a kite", "play hide and seek", "ride a bike",
]  # fmt: skip
WEATHER = [
    "The sun was shining.", "It was a warm and sunny day.", "It was a cold and windy day.",
    "The sky was blue and the birds were singing.", "It was raining outside.",
    "Snow covered the ground.", "There were big gray clouds in the sky.",
]  # fmt: skip
TIME_STARTS = ["One day", "One morning", "One sunny day", "One afternoon", "Later that day"]
CONNECTORS = ["Then", "After that", "Soon", "Next", "A moment later"]
# A speech verb has to fit its words: questions are asked, exclamations shouted or cried.
SAY_VERBS = {
    "?": ["asked", "asked", "wondered"],
    "!": ["shouted", "cried", "said", "called"],
    ".": ["said", "said", "whispered", "replied"],
}


@dataclass
class Character:
    """One member of a story's cast, with the words a sentence needs to refer to it."""

    name: str
    kind: str  # "girl", "fox", ...
    adjective: str
    he: str  # subject pronoun: he / she
    him: str  # object pronoun: him / her
    his: str  # possessive: his / her

    def intro(self) -> str:
        """First mention, e.g. 'a little fox named Pip'."""
        article = "an" if self.adjective[0] in "aeiou" else "a"
        return f"{article} {self.adjective} {self.kind} named {self.name}"


def pronouns(he: str) -> tuple[str, str, str]:
    return (he, "him", "his") if he == "he" else (he, "her", "her")


def make_character(rng: random.Random, avoid: set[str]) -> Character:
    """A child or an animal, with a name not used yet in this story."""
    he = rng.choice(["he", "she"])
    if rng.random() < 0.5:
        kind = PEOPLE[he][0]
        pool = GIRL_NAMES if he == "she" else BOY_NAMES
    else:
        kind = rng.choice(ANIMALS)
        pool = PET_NAMES
    name = rng.choice([n for n in pool if n not in avoid])
    return Character(name, kind, rng.choice(CHARACTER_ADJECTIVES), *pronouns(he))


@dataclass
class Cast:
    """Everything a plot may mention: who, where, with what."""

    hero: Character
    friend: Character
    grown_up: str
    place: str
    thing: str  # an object with its colour, e.g. "red kite"
    food: str


def make_cast(rng: random.Random) -> Cast:
    hero = make_character(rng, set())
    friend = make_character(rng, {hero.name})
    thing = f"{rng.choice(COLORS)} {rng.choice(OBJECTS)}"
    return Cast(hero, friend, rng.choice(GROWN_UPS), rng.choice(PLACES), thing, rng.choice(FOODS))


# ---------------------------------------------------------------------------------------------
# Small sentence helpers.
# ---------------------------------------------------------------------------------------------
def cap(text: str) -> str:
    """Capitalise the first letter only ('the fox ran' -> 'The fox ran')."""
    return text[:1].upper() + text[1:]


def say(rng: random.Random, who: str, words: str, verb: str | None = None) -> str:
    """One line of dialogue, with the speaker before or after the quote."""
    if words[-1] not in ".!?":
        words += "."
    verb = verb or rng.choice(SAY_VERBS[words[-1]])
    if rng.random() < 0.5:
        return f'{who} {verb}, "{words}"'
    if words.endswith("."):  # "Hello," said Tom.  (a quote followed by its speaker ends in a comma)
        words = words[:-1] + ","
    return f'"{words}" {verb} {who}.'


def maybe(rng: random.Random, sentence: str, p: float = 0.5) -> list[str]:
    """The sentence with probability p, else nothing: optional details make stories vary."""
    return [sentence] if rng.random() < p else []


def feeling(rng: random.Random, good: bool) -> str:
    return rng.choice(GOOD_FEELINGS if good else BAD_FEELINGS)


def very(rng: random.Random) -> str:
    """An optional intensifier before an adjective."""
    return rng.choice(["", "", "very ", "so ", "really "])


# ---------------------------------------------------------------------------------------------
# Openings and endings, shared by every plot.
# ---------------------------------------------------------------------------------------------
def opening(rng: random.Random, c: Cast) -> list[str]:
    h = c.hero
    first = rng.choice(
        [
            f"Once upon a time, there was {h.intro()}.",
            f"Once upon a time, in a small town, there lived {h.intro()}.",
            f"There once was {h.intro()} who lived near the {c.place}.",
            f"Long ago, {h.intro()} lived in a little house by the {c.place}.",
            f"{h.name} was {h.intro().split(' named ')[0]}.",
        ]
    )
    likes = rng.choice(ACTIVITIES)
    more = rng.choice(
        [
            f"{cap(h.he)} loved to {likes}.",
            f"Every day, {h.name} liked to {likes}.",
            f"{h.name} liked to {likes} with {h.his} friends.",
            f"{cap(h.his)} favorite thing was to {likes}.",
        ]
    )
    return [first, more] + maybe(rng, rng.choice(WEATHER), 0.4)


def ending(rng: random.Random, c: Cast, lesson: str, with_friend: bool) -> list[str]:
    """The last paragraph; it names the friend only if the friend was in the story."""
    h, f = c.hero, c.friend
    endings = [
        f"{h.name} smiled. It was the best day ever.",
        f"That night, {h.name} went to bed {very(rng)}happy.",
        f"{cap(h.he)} could not wait to tell {c.grown_up} all about it.",
        f"{cap(h.he)} gave {c.grown_up} a big hug and went to sleep with a smile.",
    ]
    if with_friend:
        endings += [
            f"From that day on, {h.name} and {f.name} were best friends.",
            f"{h.name} and {f.name} played together until the sun went down.",
            f"After that, {h.name} and {f.name} played at the {c.place} every day.",
        ]
    return [rng.choice(endings)] + maybe(rng, f"{h.name} learned that {lesson}.", 0.5)


# ---------------------------------------------------------------------------------------------
# Plots. Each returns the middle of a story as a list of sentences and the lesson it teaches.
# ---------------------------------------------------------------------------------------------
def plot_lost_thing(rng: random.Random, c: Cast) -> tuple[list[str], str]:
    h, f = c.hero, c.friend
    spots = rng.sample(HIDING_SPOTS, 3)
    s = [
        f"{rng.choice(TIME_STARTS)}, {h.name} took {h.his} {c.thing} to the {c.place}.",
        rng.choice(
            [
                f"But when {h.he} looked down, the {c.thing} was gone!",
                f"{cap(h.he)} played for a long time. Then {h.he} could not find it.",
                f"Suddenly, the wind blew and the {c.thing} was gone.",
            ]
        ),
        f"{h.name} felt {very(rng)}{feeling(rng, False)}.",
        say(rng, h.name, f"Where is my {c.thing}?"),
        f"Just then, {f.intro()} came by.",
        say(rng, f.name, f"Why are you {feeling(rng, False)}, {h.name}?", "asked"),
        say(rng, h.name, f"I lost my {c.thing}. Can you help me find it?"),
        say(rng, f.name, rng.choice(["Yes, I will help you!", "Of course! Let's look together."])),
        f"They looked {spots[0]}. It was not there.",
        f"They looked {spots[1]}. It was not there either.",
        f"{rng.choice(['At last', 'Then', 'Finally'])}, {f.name} looked {spots[2]}.",
        say(rng, f.name, f"I found it! Here is your {c.thing}!", "shouted"),
        f"{h.name} was so {feeling(rng, True)}. {say(rng, h.name, 'Thank you, ' + f.name + '!')}",
    ]
    return s, rng.choice(["friends help each other", "it is good to ask for help"])


def plot_new_friend(rng: random.Random, c: Cast) -> tuple[list[str], str]:
    h, f = c.hero, c.friend
    game = rng.choice(ACTIVITIES)
    s = [
        f"{rng.choice(TIME_STARTS)}, {h.name} went to the {c.place}.",
        f"{cap(h.he)} saw {f.intro()} sitting all alone.",
        f"{f.name} looked {very(rng)}{rng.choice(['sad', 'lonely', 'shy'])}.",
        f"{h.name} walked up to {f.him} and smiled.",
        *rng.choice(
            [
                [
                    say(rng, h.name, "Hello! Do you want to play with me?"),
                    say(rng, f.name, "Yes, please! I would like that."),
                ],
                [
                    say(rng, h.name, f"Hi! My name is {h.name}. What is your name?"),
                    say(rng, f.name, f"My name is {f.name}. Can I play with you?"),
                ],
            ]
        ),
        f"{rng.choice(CONNECTORS)}, they went to {game} together.",
        "They laughed and had so much fun." if rng.random() < 0.5 else "They had fun.",
    ]
    s += maybe(rng, f"{f.name} was not {rng.choice(['sad', 'lonely'])} anymore.")
    return s, "a smile can make a new friend"


def plot_sharing(rng: random.Random, c: Cast) -> tuple[list[str], str]:
    h, f = c.hero, c.friend
    s = [
        f"{rng.choice(TIME_STARTS)}, {c.grown_up} gave {h.name} a big {c.food}.",
        f"{h.name} took the {c.food} to the {c.place}.",
        f"There {h.he} met {f.name}, {f.intro().split(' named ')[0]}.",
        f"{f.name} looked at the {c.food}. {cap(f.he)} was very hungry.",
        say(rng, f.name, f"Can I have some of your {c.food}?", "asked"),
        rng.choice(
            [
                say(rng, h.name, f"No, it is my {c.food}!"),
                f"{h.name} did not want to share at first.",
            ]
        ),
        f"But then {h.name} saw that {f.name} was {feeling(rng, False)}.",
        f"{cap(h.he)} broke the {c.food} in two and gave half to {f.name}.",
        say(rng, f.name, "Thank you! You are a good friend."),
        f"The {c.food} tasted even better when they ate it together.",
    ]
    return s, "sharing makes everyone happy"


def plot_fear(rng: random.Random, c: Cast) -> tuple[list[str], str]:
    h = c.hero
    fear, comfort = rng.choice(
        [
            ("the dark", "The dark is just the night resting. I will leave a small light on."),
            ("the thunder", "Thunder is just a loud noise. It cannot hurt you."),
            ("the big dog next door", "The dog is friendly. He just wants to say hello."),
            ("the deep water", "I will hold your hand. We will go slowly."),
            ("the tall slide", "You can do it. I will be right here at the bottom."),
        ]
    )
    s = [
        f"But {h.name} had a problem. {cap(h.he)} was afraid of {fear}.",
        f"{rng.choice(TIME_STARTS)}, {h.name} had to face {fear}.",
        f"{cap(h.he)} felt {very(rng)}scared and ran to {c.grown_up}.",
        say(rng, h.name, f"{c.grown_up}, I am scared of {fear}!"),
        f"{c.grown_up} gave {h.him} a big hug.",
        say(rng, c.grown_up, comfort),
        f"{h.name} took a deep breath.",
        rng.choice(
            [
                f"{cap(h.he)} was brave, and {fear} was not so scary after all.",
                f"Step by step, {h.he} was not afraid anymore.",
            ]
        ),
        say(rng, h.name, "I did it! I am brave!", "shouted"),
        f"{c.grown_up} was {very(rng)}proud of {h.him}.",
    ]
    return s, "being brave means trying even when you are scared"


def plot_helping(rng: random.Random, c: Cast) -> tuple[list[str], str]:
    h, f = c.hero, c.friend
    trouble, fix = rng.choice(
        [
            ("was stuck in a tree", f"{h.name} found a long stick and helped {f.him} climb down"),
            ("had a hurt leg", f"{h.name} carried {f.him} home and {c.grown_up} helped {f.him}"),
            ("was lost", f"{h.name} walked with {f.him} all the way home"),
            (
                "could not reach the apples on the tree",
                f"{h.name} climbed up and threw the apples down",
            ),
            ("had dropped a bag of toys in the mud", f"{h.name} helped {f.him} pick them all up"),
        ]
    )
    s = [
        f"{rng.choice(TIME_STARTS)}, {h.name} was walking in the {c.place}.",
        f"{cap(h.he)} heard a small voice. It was {f.intro()}.",
        f"{f.name} {trouble}.",
        say(rng, f.name, "Help! Please help me!", "cried"),
        say(rng, h.name, "Don't worry. I will help you!"),
        f"{cap(fix)}.",
        say(rng, f.name, f"Thank you, {h.name}! You are so kind."),
        f"{f.name} gave {h.name} a {c.thing} as a gift.",
    ]
    return s, "it feels good to help others"


def plot_trip(rng: random.Random, c: Cast) -> tuple[list[str], str]:
    h = c.hero
    seen = rng.sample(ANIMALS, 2)
    doing = rng.choice(["eating", "sleeping", "running", "playing"])
    s = [
        f'{rng.choice(TIME_STARTS)}, {c.grown_up} said, "Let\'s go to the {c.place}!"',
        f"{h.name} was {very(rng)}excited. {cap(h.he)} put on {h.his} coat.",
        f"At the {c.place}, {h.he} saw a {seen[0]} and a {seen[1]}.",
        say(
            rng,
            h.name,
            f"Look, {c.grown_up}! The {seen[0]} is {doing}!",
        ),
        f"{rng.choice(CONNECTORS)}, {h.name} found a {c.thing} on the ground.",
        say(rng, c.grown_up, f"What a nice {c.thing}. Let's take it home."),
        f"They ate {c.food}s and watched the {rng.choice(['clouds', 'birds', 'water', 'sun'])}.",
        f"When they came home, {h.name} was tired but {feeling(rng, True)}.",
    ]
    return s, "there is something new to see every day"


def plot_baking(rng: random.Random, c: Cast) -> tuple[list[str], str]:
    h, f = c.hero, c.friend
    treat = rng.choice(["cake", "pie", "cookies", "muffins"])
    s = [
        f"{rng.choice(TIME_STARTS)}, {h.name} remembered that it was {f.name}'s birthday.",
        say(rng, h.name, f"{c.grown_up}, can we make {treat} for {f.name}?"),
        say(rng, c.grown_up, "What a good idea!"),
        "They put flour, eggs, milk and sugar in a big bowl.",
        f"{h.name} mixed and mixed. There was flour on {h.his} nose!",
        f"{c.grown_up} laughed." if rng.random() < 0.5 else f"{h.name} giggled.",
        f"Soon the {treat} smelled {very(rng)}good.",
        f"{h.name} took the {treat} to {f.name}'s house.",
        say(rng, h.name, f"Happy birthday, {f.name}!"),
        f"{f.name} was so {feeling(rng, True)}. It was the best birthday present.",
    ]
    return s, "a gift made with love is the best gift"


def plot_broken(rng: random.Random, c: Cast) -> tuple[list[str], str]:
    h = c.hero
    item = rng.choice(["vase", "plate", "cup", "lamp", "window"])
    s = [
        f"{rng.choice(TIME_STARTS)}, {h.name} was playing with {h.his} {c.thing} in the house.",
        f"{cap(h.he)} threw it too high. Crash! {cap(h.he)} broke {c.grown_up}'s {item}.",
        f"{h.name} felt {very(rng)}{rng.choice(['scared', 'worried', 'bad'])}.",
        f"{cap(h.he)} wanted to hide, but {h.he} knew that was not right.",
        f"{h.name} went to {c.grown_up}.",
        say(rng, h.name, f"I am sorry. I broke your {item}."),
        f"{c.grown_up} looked at the {item} and then at {h.name}.",
        say(rng, c.grown_up, "Thank you for telling me the truth. Let's clean it up together."),
        f"{h.name} felt {feeling(rng, True)} again.",
    ]
    return s, "it is always best to tell the truth"


def plot_race(rng: random.Random, c: Cast) -> tuple[list[str], str]:
    h, f = c.hero, c.friend
    goal = rng.choice(["the big tree", "the red gate", "the old bridge", "the top of the hill"])
    s = [
        f"{rng.choice(TIME_STARTS)}, {h.name} and {f.intro()} were at the {c.place}.",
        say(rng, f.name, f"Let's have a race to {goal}!"),
        "Ready, set, go! They ran as fast as they could.",
        f"{h.name} was in front. But then {f.name} fell down and hurt {f.his} knee.",
        f"{h.name} stopped running. {cap(h.he)} went back to help {f.him}.",
        say(rng, h.name, "Are you okay? Take my hand."),
        f"They walked to {goal} together.",
        say(rng, f.name, "You could have won, but you helped me. Thank you."),
    ]
    return s, "friends are more important than winning"


def plot_garden(rng: random.Random, c: Cast) -> tuple[list[str], str]:
    h = c.hero
    plant = rng.choice(["flower", "tree", "carrot", "sunflower", "pumpkin"])
    s = [
        f"{rng.choice(TIME_STARTS)}, {c.grown_up} gave {h.name} a tiny seed.",
        say(rng, c.grown_up, f"If you take care of it, it will grow into a {plant}."),
        f"{h.name} put the seed in the ground near the {c.place}.",
        f"Every day, {h.he} gave it water. But nothing happened.",
        say(rng, h.name, "Why is it not growing?"),
        say(rng, c.grown_up, "You have to be patient."),
        f"{h.name} waited and waited. Then one morning, {h.he} saw a small green leaf!",
        f"The leaf grew and grew. Soon there was a big {plant}.",
        f"{h.name} was {very(rng)}proud of {h.his} {plant}.",
    ]
    return s, "good things take time"


def plot_wish(rng: random.Random, c: Cast) -> tuple[list[str], str]:
    h, f = c.hero, c.friend
    wish = rng.choice(["fly like a bird", "see the sea", "touch the moon", "be very tall"])
    s = [
        f"{h.name} had a big wish. {cap(h.he)} wanted to {wish}.",
        f"{rng.choice(TIME_STARTS)}, {h.he} told {f.name} about {h.his} wish.",
        say(rng, f.name, "That is a good wish. Maybe one day it will come true."),
        f"That night, {h.name} had a dream.",
        f"In the dream, {h.he} could {wish}! {cap(h.he)} saw the {c.place} from far away.",
        f"Everything looked {rng.choice(['small', 'bright', 'beautiful', 'new'])}.",
        f"When {h.name} woke up, {h.he} smiled.",
        say(rng, h.name, f"{f.name}, I had the best dream!"),
    ]
    return s, "dreams can take you anywhere"


# Plots in which the friend never appears, so the ending must not name them.
PLOTS_WITHOUT_FRIEND = {"plot_fear", "plot_trip", "plot_broken", "plot_garden"}
PLOTS = [
    plot_lost_thing, plot_new_friend, plot_sharing, plot_fear, plot_helping, plot_trip,
    plot_baking, plot_broken, plot_race, plot_garden, plot_wish,
]  # fmt: skip


def make_story(rng: random.Random) -> str:
    """One story: opening, a plot, an ending; split into two or three paragraphs."""
    cast = make_cast(rng)
    plot = rng.choice(PLOTS)
    middle, lesson = plot(rng, cast)
    with_friend = plot.__name__ not in PLOTS_WITHOUT_FRIEND
    start, end = opening(rng, cast), ending(rng, cast, lesson, with_friend)
    cut = rng.randint(2, max(2, len(middle) - 2))
    paragraphs = [start + middle[:cut], middle[cut:]] if rng.random() < 0.5 else [start + middle]
    return "\n\n".join(" ".join(p) for p in paragraphs + [end])


def make_corpus(n_stories: int, seed: int) -> str:
    """n_stories stories joined by END_OF_STORY lines; the same seed gives the same text."""
    rng = random.Random(seed)
    return f"\n{END_OF_STORY}\n".join(make_story(rng) for _ in range(n_stories)) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("weights/corpus/stories.txt"))
    parser.add_argument("--stories", type=int, default=12000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    text = make_corpus(args.stories, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.stories} stories, {len(text):,} characters to {args.out}")


if __name__ == "__main__":
    main()
