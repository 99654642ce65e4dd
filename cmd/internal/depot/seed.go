package depot

import (
	"fmt"
	"time"

	"github.com/smartbox-oss/smartbox/sync/bookings"
	"github.com/smartbox-oss/smartbox/sync/fleetio"
	"github.com/smartbox-oss/smartbox/sync/fleetio/fleetiotest"
)

// SlotsPerBox is every simulated box's size: the 12-slot SmartBox.
const SlotsPerBox = 12

// The seeded fleet: each box's twelve slots hold the keys of twelve
// vehicles, each linked to its key. Box 1 is the one the story is about.
var vehicles = [SlotsPerBox]fleetio.Vehicle{
	{Name: "Van 7", Make: "Ford", Model: "Transit", Year: 2021},
	{Name: "Truck 12", Make: "Volvo", Model: "VNL", Year: 2020},
	{Name: "Car 3", Make: "Toyota", Model: "Prius", Year: 2019},
	{Name: "Car 8", Make: "Toyota", Model: "Corolla", Year: 2022},
	{Name: "Van 9", Make: "Mercedes", Model: "Sprinter", Year: 2023},
	{Name: "Pickup 4", Make: "Ford", Model: "F-150", Year: 2021},
	{Name: "Van 11", Make: "Renault", Model: "Master", Year: 2020},
	{Name: "Car 15", Make: "Tesla", Model: "Model 3", Year: 2024},
	{Name: "Truck 2", Make: "Isuzu", Model: "NPR", Year: 2018},
	{Name: "Car 6", Make: "Honda", Model: "Civic", Year: 2022},
	{Name: "Van 14", Make: "Fiat", Model: "Ducato", Year: 2023},
	{Name: "Car 10", Make: "Kia", Model: "Niro", Year: 2024},
}

// PromptSlot is the slot whose vehicle is in Prompt mode in every box: its
// assignments wait for the fleet manager's "create booking".
const PromptSlot = 2

// The drivers: email and phone, email only, phone only (told by SMS).
var drivers = []fleetio.Contact{
	{FirstName: "Ada", LastName: "Lovelace", Email: "ada@depot.example", MobilePhoneNumber: "+15550100", EmployeeNumber: "E-100"},
	{FirstName: "Grace", LastName: "Hopper", Email: "grace@depot.example", EmployeeNumber: "E-101"},
	{FirstName: "Linus", LastName: "Torvalds", MobilePhoneNumber: "+15550102", EmployeeNumber: "E-102"},
	{FirstName: "Margaret", LastName: "Hamilton", Email: "margaret@depot.example", MobilePhoneNumber: "+15550103", EmployeeNumber: "E-103"},
	{FirstName: "Alan", LastName: "Turing", Email: "alan@depot.example", EmployeeNumber: "E-104"},
}

// fleetSeed is what seedFleetio stored: vehicle ids by box and slot, and
// the drivers.
type fleetSeed struct {
	vehicles map[string][SlotsPerBox]int64 // box id -> slot-1 -> vehicle id
	drivers  []fleetio.Contact
}

// seedFleetio stores the fleet in the fake account: twelve vehicles per
// box, the drivers, and the three Keycafe custom fields, as an account
// admin defines them before connecting Keycafe.
func seedFleetio(f *fleetiotest.Server, boxes int) (*fleetSeed, error) {
	s := &fleetSeed{vehicles: map[string][SlotsPerBox]int64{}}
	for n := 1; n <= boxes; n++ {
		var ids [SlotsPerBox]int64
		for i, v := range vehicles {
			if n > 1 {
				v.Name = fmt.Sprintf("%s (box %d)", v.Name, n)
			}
			v.LicensePlate = fmt.Sprintf("KC-%02d%02d", n, i+1)
			stored, err := f.AddVehicle(v)
			if err != nil {
				return nil, fmt.Errorf("seeding Fleetio: %w", err)
			}
			ids[i] = stored.ID
		}
		s.vehicles[boxID(n)] = ids
	}
	for _, c := range drivers {
		stored, err := f.AddContact(c)
		if err != nil {
			return nil, fmt.Errorf("seeding Fleetio: %w", err)
		}
		s.drivers = append(s.drivers, stored)
	}
	for _, k := range []string{fleetio.FieldAccessInstructions, fleetio.FieldAccessLink, fleetio.FieldAccessCode} {
		f.DefineCustomField(k, false)
	}
	return s, nil
}

// vehicleName is the display name of a vehicle, which is its key's name.
func vehicleName(v fleetio.Vehicle) string {
	return fmt.Sprintf("%s (%s %s)", v.Name, v.Make, v.Model)
}

// linkMode is how slot's vehicle is linked.
func linkMode(slot int) bookings.LinkMode {
	if slot == PromptSlot {
		return bookings.ModePrompt
	}
	return bookings.ModeAutomatic
}

// firstAssignment is the story's start: box 1's Van 7 assigned to Ada from
// now for eight hours.
func (s *fleetSeed) firstAssignment(now time.Time) fleetio.VehicleAssignment {
	end := now.Add(8 * time.Hour)
	return fleetio.VehicleAssignment{VehicleID: s.vehicles[boxID(1)][0], ContactID: s.drivers[0].ID,
		StartedAt: now, EndedAt: &end}
}

// boxID is box n's id.
func boxID(n int) string { return fmt.Sprintf("box-%d", n) }

// fobUID is the fob of box n's slot's key: 10 hex digits, unique in the
// depot.
func fobUID(n, slot int) string { return fmt.Sprintf("01%04X%04X", n, slot) }
