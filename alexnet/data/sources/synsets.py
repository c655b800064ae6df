"""An embedded table of real ILSVRC-2012 classes: WordNet id and the devkit's `words`.

Owns the class identities of the tiny dataset (and friendly names for image folders whose
class folders are WordNet ids). 100 of the 1000 ILSVRC-2012 leaf synsets, spread over the
whole hierarchy (animals, dogs, birds, artifacts, food, scenery), sorted by WordNet id. Each
line was checked against the public ILSVRC-2012 synset listing (LOC_synset_mapping.txt, the
order torchvision's class index uses) and kept verbatim; the tiny generator uses these ids so
its data looks, file for file, like the real ILSVRC-2012 release.

Internal (non-leaf) synsets used by the tiny devkit's meta.mat to exercise the leaf filter are
real WordNet nouns too (entity, animal, artifact, bird, dog).
"""

from __future__ import annotations

# wnid<space>words (the devkit's comma-separated synonyms); one line per class.
_TABLE = """\
n01440764 tench, Tinca tinca
n01518878 ostrich, Struthio camelus
n01531178 goldfinch, Carduelis carduelis
n01614925 bald eagle, American eagle, Haliaeetus leucocephalus
n01641577 bullfrog, Rana catesbeiana
n01664065 loggerhead, loggerhead turtle, Caretta caretta
n01698640 American alligator, Alligator mississipiensis
n01742172 boa constrictor, Constrictor constrictor
n01770393 scorpion
n01774750 tarantula
n01806143 peacock
n01818515 macaw
n01843383 toucan
n01860187 black swan, Cygnus atratus
n01882714 koala, koala bear, kangaroo bear, native bear, Phascolarctos cinereus
n01910747 jellyfish
n01944390 snail
n01983481 American lobster, Northern lobster, Maine lobster, Homarus americanus
n02007558 flamingo
n02056570 king penguin, Aptenodytes patagonica
n02071294 killer whale, killer, orca, grampus, sea wolf, Orcinus orca
n02085620 Chihuahua
n02088364 beagle
n02099601 golden retriever
n02100735 English setter
n02106662 German shepherd, German shepherd dog, German police dog, alsatian
n02110185 Siberian husky
n02110958 pug, pug-dog
n02114367 timber wolf, grey wolf, gray wolf, Canis lupus
n02119022 red fox, Vulpes vulpes
n02119789 kit fox, Vulpes macrotis
n02123045 tabby, tabby cat
n02129165 lion, king of beasts, Panthera leo
n02129604 tiger, Panthera tigris
n02132136 brown bear, bruin, Ursus arctos
n02134084 ice bear, polar bear, Ursus Maritimus, Thalarctos maritimus
n02165456 ladybug, ladybeetle, lady beetle, ladybird, ladybird beetle
n02206856 bee
n02279972 monarch, monarch butterfly, milkweed butterfly, Danaus plexippus
n02317335 starfish, sea star
n02342885 hamster
n02391049 zebra
n02395406 hog, pig, grunter, squealer, Sus scrofa
n02437616 llama
n02480855 gorilla, Gorilla gorilla
n02504458 African elephant, Loxodonta africana
n02510455 giant panda, panda, panda bear, coon bear, Ailuropoda melanoleuca
n02643566 lionfish
n02676566 acoustic guitar
n02690373 airliner
n02701002 ambulance
n02787622 banjo
n02802426 basketball
n02814860 beacon, lighthouse, beacon light, pharos
n02835271 bicycle-built-for-two, tandem bicycle, tandem
n02917067 bullet train, bullet
n02951358 canoe
n02980441 castle
n03028079 church, church building
n03063599 coffee mug
n03095699 container ship, containership, container vessel
n03100240 convertible
n03179701 desk
n03220513 dome
n03272010 electric guitar
n03345487 fire engine, fire truck
n03417042 garbage truck, dustcart
n03445777 golf ball
n03452741 grand piano, grand
n03544143 hourglass
n03590841 jack-o'-lantern
n03642806 laptop, laptop computer
n03691459 loudspeaker, speaker, speaker unit, loudspeaker system, speaker system
n03792782 mountain bike, all-terrain bike, off-roader
n03837869 obelisk
n03888257 parachute, chute
n03947888 pirate, pirate ship
n04037443 racer, race car, racing car
n04086273 revolver, six-gun, six-shooter
n04146614 school bus
n04254680 soccer ball
n04266014 space shuttle
n04285008 sports car, sport car
n04310018 steam locomotive
n04366367 suspension bridge
n04398044 teapot
n04465501 tractor
n04507155 umbrella
n04536866 violin, fiddle
n04562935 water tower
n06794110 street sign
n06874185 traffic light, traffic signal, stoplight
n07697313 cheeseburger
n07734744 mushroom
n07747607 orange
n07753592 banana
n07873807 pizza, pizza pie
n09246464 cliff, drop, drop-off
n09472597 volcano
n11939491 daisy
"""

#: (wnid, words) for each embedded ILSVRC-2012 class, sorted by wnid.
SYNSETS: tuple[tuple[str, str], ...] = tuple(
    tuple(line.split(" ", 1)) for line in _TABLE.splitlines())  # type: ignore[misc]

WORDS: dict[str, str] = dict(SYNSETS)

# Real WordNet internal nodes (num_children > 0 in meta.mat), with the embedded classes they hold.
# The wnid ranges follow ILSVRC-2012's class listing, which WordNet ids sort by subtree.
INTERNAL: dict[str, str] = {
    "n00001740": "entity",
    "n00015388": "animal, animate being, beast, brute, creature, fauna",
    "n00021939": "artifact, artefact",
    "n01503061": "bird",
    "n02084071": "dog, domestic dog, Canis familiaris",
}
# Where each internal node hangs (its parent); entity is the root.
INTERNAL_PARENT: dict[str, str] = {
    "n00015388": "n00001740",
    "n00021939": "n00001740",
    "n01503061": "n00015388",
    "n02084071": "n00015388",
}
_BIRD_RANGES = (("n01514668", "n01622779"), ("n01795545", "n01860187"), ("n02002556", "n02058221"))
_DOG_RANGE = ("n02085620", "n02113978")
_ANIMAL_END = "n02666196"  # abacus: the first artifact of the ILSVRC-2012 listing
_ARTIFACT_RANGE = ("n02666196", "n04613696")


def parent_of(wnid: str) -> str:
    """The internal synset an embedded class hangs under in the tiny devkit's hierarchy."""
    if any(lo <= wnid <= hi for lo, hi in _BIRD_RANGES):
        return "n01503061"
    if _DOG_RANGE[0] <= wnid <= _DOG_RANGE[1]:
        return "n02084071"
    if wnid < _ANIMAL_END:
        return "n00015388"
    if _ARTIFACT_RANGE[0] <= wnid <= _ARTIFACT_RANGE[1]:
        return "n00021939"
    return "n00001740"


def short_name(words: str) -> str:
    """The first synonym of a devkit `words` string ("tench, Tinca tinca" -> "tench")."""
    return words.split(",")[0].strip()
