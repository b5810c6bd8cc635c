"""Built-in scenarios written for negolens: 36 second-hand items across six categories.

They let every command run with no data directory. Numbers follow one documented rule so they
are easy to reason about: buyer target = 0.75 × list, buyer budget = 0.9 × list, seller cost =
0.65 × list, seller target = list.
"""

from __future__ import annotations

from negolens.agents.scenarios import Scenario

# (title, category, list price, description)
ITEMS = [
    ("Trek Marlin 5 mountain bike", "bike", 350, "21 speeds, new tires, light scratches on the frame."),
    ("Kids' 16-inch bicycle with training wheels", "bike", 60, "Red, outgrown, works perfectly."),
    ("Specialized road bike, 56 cm", "bike", 780, "Carbon fork, Shimano 105, serviced last month."),
    ("Electric scooter, 25 km range", "bike", 290, "Folds flat, charger included, minor wear."),
    ("Bike trailer for two kids", "bike", 120, "Converts to a stroller, clean canopy."),
    ("Cruiser bike with basket", "bike", 180, "Beach cruiser, 3 speeds, rust-free."),
    ("Apartment-size sofa, grey fabric", "furniture", 420, "Two years old, no pets, no smoke."),
    ("Solid oak dining table with 4 chairs", "furniture", 650, "Seats six with the leaf, small dent on one chair."),
    ("IKEA Malm dresser", "furniture", 95, "Six drawers, white, one handle loose."),
    ("Leather recliner chair", "furniture", 310, "Brown leather, manual recline, very comfortable."),
    ("Standing desk, electric", "furniture", 380, "Memory presets, 120 x 60 cm top."),
    ("Bookshelf, 5 shelves", "furniture", 45, "Walnut finish, easy to disassemble."),
    ("iPhone 13, 128 GB", "phone", 430, "Unlocked, battery health 88%, case included."),
    ("Samsung Galaxy S21", "phone", 310, "Small scratch on the back, original box."),
    ("Google Pixel 7", "phone", 360, "Unlocked, screen protector since day one."),
    ("Nokia feature phone", "phone", 35, "Great battery, dual SIM."),
    ("iPad Air (4th gen)", "phone", 390, "Wi-Fi, 64 GB, with Apple Pencil."),
    ("Apple Watch Series 7", "phone", 240, "45 mm, two bands, charger."),
    ("Sony 55-inch 4K TV", "electronics", 520, "HDR, wall mount included, remote works."),
    ("Nintendo Switch OLED", "electronics", 280, "Two controllers, three games."),
    ("Canon EOS Rebel T7 camera", "electronics", 410, "18-55 mm lens, 6,000 shutter count."),
    ("Bose QC45 headphones", "electronics", 170, "Noise cancelling, travel case."),
    ("Dell XPS 13 laptop", "electronics", 690, "16 GB RAM, 512 GB SSD, light keyboard wear."),
    ("GoPro Hero 9", "electronics", 220, "Two batteries, waterproof housing."),
    ("2012 Honda Civic LX", "car", 7800, "142,000 miles, clean title, new brakes."),
    ("2009 Toyota Camry LE", "car", 6200, "Well maintained, 160,000 miles, one owner."),
    ("2015 Ford F-150", "car", 18500, "V6, tow package, 98,000 miles."),
    ("2006 Mazda Miata", "car", 5400, "Manual, soft top replaced last year."),
    ("Vespa scooter 150cc", "car", 2900, "Garage kept, 4,000 miles."),
    ("2018 Subaru Outback", "car", 16900, "AWD, roof rack, 75,000 miles."),
    ("Studio apartment, monthly rent", "housing", 1450, "Downtown, laundry in building, 12-month lease."),
    ("Two-bedroom flat, monthly rent", "housing", 2300, "Near the park, parking spot, pets allowed."),
    ("Room in shared house, monthly rent", "housing", 800, "Furnished, utilities included."),
    ("Garage storage space, monthly", "housing", 150, "Dry, secure, 20 square meters."),
    ("Summer sublet, one month", "housing", 1100, "Fully furnished, close to campus."),
    ("Parking space downtown, monthly", "housing", 210, "Covered, 24/7 access."),
]


def builtin_scenarios() -> list[Scenario]:
    """The built-in scenarios, one per item of ``ITEMS`` (prices in dollars, set by the module's rule).

    Examples
    --------
    >>> s = builtin_scenarios()[0]
    >>> s.title, s.list_price, s.buyer_target, s.buyer_budget, s.seller_cost
    ('Trek Marlin 5 mountain bike', 350.0, 262.5, 315.0, 227.5)
    """
    return [
        Scenario(
            id=f"builtin-{i:02d}",
            source="builtin",
            title=title,
            description=desc,
            category=cat,
            list_price=float(price),
            buyer_target=round(0.75 * price, 2),
            seller_target=float(price),
            buyer_budget=round(0.9 * price, 2),
            seller_cost=round(0.65 * price, 2),
        )
        for i, (title, cat, price, desc) in enumerate(ITEMS)
    ]
